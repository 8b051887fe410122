"""TF-IDF features + logistic regression: the cheapest serious baseline."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from rightsize.rungs import register
from rightsize.rungs.base import Knob, Rung
from rightsize.rungs.state import load_linear_head, read_arrays, read_json, save_linear_head, write_arrays, write_json
from rightsize.threads import set_threads


@register
class TfidfRung(Rung):
    kind = "tfidf"
    knobs = {
        "ngram_max": Knob(int, 2, min=1, max=3, help="word n-grams up to this length"),
        "max_features": Knob(int, 200_000, min=100, max=5_000_000, help="vocabulary cap"),
        "C": Knob(float, 10.0, min=1e-4, max=1e4, help="inverse regularization strength"),
        "threads": Knob(int, None, min=1, max=1024, nullable=True, help="CPU threads for the classifier's BLAS"),
    }

    def load(self) -> None:
        set_threads(self.k["threads"], pools=("blas",))  # no torch or FAISS here
        from sklearn.feature_extraction.text import TfidfVectorizer
        from sklearn.linear_model import LogisticRegression

        self.vectorizer = TfidfVectorizer(
            sublinear_tf=True, ngram_range=(1, self.k["ngram_max"]), max_features=self.k["max_features"]
        )
        self.classifier = LogisticRegression(C=self.k["C"], max_iter=2000)

    def fit(self, texts: Sequence[str], labels: Sequence[str]) -> None:
        self.classifier.fit(self.vectorizer.fit_transform(texts), labels)

    def predict(self, texts: Sequence[str]) -> list[str]:
        return [str(p) for p in self.classifier.predict(self.vectorizer.transform(texts))]

    def predict_proba(self, texts: Sequence[str]):
        probs = self.classifier.predict_proba(self.vectorizer.transform(texts))
        return [str(c) for c in self.classifier.classes_], probs

    def save(self, folder: Path) -> None:
        # The vocabulary as a list of terms in column order; the idf weights and the head as arrays.
        terms = sorted(self.vectorizer.vocabulary_, key=self.vectorizer.vocabulary_.__getitem__)
        write_json(folder, "vocabulary", terms)
        write_arrays(folder, "idf", {"idf": self.vectorizer.idf_})
        save_linear_head(folder, self.classifier)

    def restore(self, folder: Path) -> None:
        terms = read_json(folder, "vocabulary")
        idf = read_arrays(folder, "idf")["idf"]
        if not isinstance(terms, list) or len(terms) != len(idf) or len(set(terms)) != len(terms):
            raise ValueError("vocabulary and idf weights do not match")
        self.vectorizer.vocabulary_ = {str(t): i for i, t in enumerate(terms)}
        self.vectorizer.idf_ = idf
        self.classifier = load_linear_head(folder)

    def n_params(self) -> int:
        # Learned numbers: the idf weights and the classifier's coefficients and intercepts.
        return int(self.vectorizer.idf_.size + self.classifier.coef_.size + self.classifier.intercept_.size)

    def facts(self) -> dict:
        return {"vocabulary": len(self.vectorizer.vocabulary_)}
