"""The classifier a fine-tune trains: an encoder's token states, mean-pooled, through one linear layer.

Mean pooling over the real tokens is what the sentence encoders rightsize ladders name were trained
with (MiniLM, mpnet), so a fine-tune starts from the sentence embedding the frozen probe sees; the
encoder's own L2 normalization is left out, as it would only shrink the head's inputs.
"""

from __future__ import annotations

import numpy as np
import torch


class MeanPoolClassifier(torch.nn.Module):
    """``backbone`` (a transformers encoder, LoRA-wrapped or not) + dropout + a linear head: features -> logits."""

    def __init__(self, backbone: torch.nn.Module, n_classes: int):
        super().__init__()
        config = backbone.config
        self.backbone = backbone
        self.dropout = torch.nn.Dropout(getattr(config, "hidden_dropout_prob", 0.1) or 0.0)
        self.head = torch.nn.Linear(config.hidden_size, n_classes, device=next(backbone.parameters()).device)

    def pool(self, features: dict[str, torch.Tensor]) -> torch.Tensor:
        """The mean of the token states over the real tokens: what the head reads."""
        hidden = self.backbone(**features).last_hidden_state
        mask = features["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        return (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1.0)

    def forward(self, features: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.head(self.dropout(self.pool(features)))

    @torch.no_grad()
    def start_head_at(self, coef: "np.ndarray", intercept: "np.ndarray") -> None:
        """Set the head to a linear model fitted on the pooled features (one row per class; a
        binary model's single row becomes the second class's logit against a zero first)."""
        if coef.shape[0] == 1 and self.head.out_features == 2:
            coef = np.vstack([np.zeros_like(coef), coef])
            intercept = np.concatenate([np.zeros_like(intercept), intercept])
        self.head.weight.copy_(torch.as_tensor(coef, dtype=self.head.weight.dtype))
        self.head.bias.copy_(torch.as_tensor(intercept, dtype=self.head.bias.dtype))
