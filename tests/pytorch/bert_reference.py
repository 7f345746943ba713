#!/usr/bin/env python3
"""A small BERT in PyTorch, for the bert_pytorch ctest.

Hugging Face's BertForSequenceClassification written out by hand (the
`transformers` package is not a dependency): the same module tree and
attribute names, so its state_dict keys are Hugging Face's, exact (erf) GELU,
the extended attention mask (1 - mask) * finfo(float32).min, no dropout
(inference). Random weights, LayerNorm weights and biases included, so a
LayerNorm that ignored its parameters would fail.

    bert_reference.py WEIGHTS.safetensors IO.safetensors

writes the state_dict (F32) to WEIGHTS and, to IO, the inputs "input_ids"
and "attention_mask" ([batch][seq] floats; sequence 1 is padded) and
PyTorch's outputs "logits" and "last_hidden_state", and "config" (the
BertConfig fields in models.hpp's order, so the C++ side builds the same
shape). Exits 77 (ctest's skip)
without torch.
"""
import math
import os
import sys

try:
    import torch
    from torch import nn
except ImportError:
    print("torch not installed: skipping")
    sys.exit(77)

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "..", "examples", "fashion_mnist"))
from export_from_pytorch import save_safetensors  # noqa: E402

# The tiny configuration of docs/transformers.md's PyTorch check.
VOCAB, HIDDEN, LAYERS, HEADS, INTERMEDIATE = 100, 64, 2, 4, 128
MAX_POSITIONS, TYPE_VOCAB, LABELS, EPS = 32, 2, 3, 1e-12
BATCH, SEQ, PADDED_TOKENS = 2, 16, 5


class LayerShape:
    """The sizes of one encoder layer (the ViT example reuses the layer)."""

    def __init__(self, hidden, heads, intermediate, eps):
        self.hidden, self.heads, self.intermediate, self.eps = hidden, heads, intermediate, eps


SHAPE = LayerShape(HIDDEN, HEADS, INTERMEDIATE, EPS)


class BertEmbeddings(nn.Module):
    def __init__(self):
        super().__init__()
        self.word_embeddings = nn.Embedding(VOCAB, HIDDEN)
        self.position_embeddings = nn.Embedding(MAX_POSITIONS, HIDDEN)
        self.token_type_embeddings = nn.Embedding(TYPE_VOCAB, HIDDEN)
        self.LayerNorm = nn.LayerNorm(HIDDEN, eps=EPS)

    def forward(self, input_ids):
        positions = torch.arange(input_ids.shape[1]).unsqueeze(0)
        token_types = torch.zeros_like(input_ids)
        x = (self.word_embeddings(input_ids) + self.position_embeddings(positions)
             + self.token_type_embeddings(token_types))
        return self.LayerNorm(x)


class BertSelfAttention(nn.Module):
    def __init__(self, shape):
        super().__init__()
        self.heads, self.head_size = shape.heads, shape.hidden // shape.heads
        self.query = nn.Linear(shape.hidden, shape.hidden)
        self.key = nn.Linear(shape.hidden, shape.hidden)
        self.value = nn.Linear(shape.hidden, shape.hidden)

    def split_heads(self, x):
        b, s, _ = x.shape
        return x.view(b, s, self.heads, self.head_size).permute(0, 2, 1, 3)

    def forward(self, x, extended_mask=None):
        q, k, v = (self.split_heads(f(x)) for f in (self.query, self.key, self.value))
        scores = torch.matmul(q, k.transpose(-1, -2)) / math.sqrt(self.head_size)
        if extended_mask is not None:
            scores = scores + extended_mask
        probs = torch.softmax(scores, dim=-1)
        context = torch.matmul(probs, v).permute(0, 2, 1, 3).contiguous()
        return context.view(x.shape)


class BertOutput(nn.Module):
    """Hugging Face's BertSelfOutput (in_features = hidden) and BertOutput
    (in_features = intermediate): the same dense + residual + LayerNorm."""

    def __init__(self, in_features, shape):
        super().__init__()
        self.dense = nn.Linear(in_features, shape.hidden)
        self.LayerNorm = nn.LayerNorm(shape.hidden, eps=shape.eps)

    def forward(self, hidden, residual):
        return self.LayerNorm(self.dense(hidden) + residual)


class BertAttention(nn.Module):
    def __init__(self, shape):
        super().__init__()
        self.self = BertSelfAttention(shape)
        self.output = BertOutput(shape.hidden, shape)

    def forward(self, x, extended_mask=None):
        return self.output(self.self(x, extended_mask), x)


class BertIntermediate(nn.Module):
    def __init__(self, shape):
        super().__init__()
        self.dense = nn.Linear(shape.hidden, shape.intermediate)

    def forward(self, x):
        return nn.functional.gelu(self.dense(x))  # exact (erf) GELU, HF's "gelu"


class BertLayer(nn.Module):
    def __init__(self, shape):
        super().__init__()
        self.attention = BertAttention(shape)
        self.intermediate = BertIntermediate(shape)
        self.output = BertOutput(shape.intermediate, shape)

    def forward(self, x, extended_mask=None):
        attended = self.attention(x, extended_mask)
        return self.output(self.intermediate(attended), attended)


class BertEncoder(nn.Module):
    def __init__(self, shape, layers):
        super().__init__()
        self.layer = nn.ModuleList(BertLayer(shape) for _ in range(layers))

    def forward(self, x, extended_mask=None):
        for layer in self.layer:
            x = layer(x, extended_mask)
        return x


class BertPooler(nn.Module):
    def __init__(self):
        super().__init__()
        self.dense = nn.Linear(HIDDEN, HIDDEN)
        self.activation = nn.Tanh()

    def forward(self, x):
        return self.activation(self.dense(x[:, 0]))


class BertModel(nn.Module):
    def __init__(self):
        super().__init__()
        self.embeddings = BertEmbeddings()
        self.encoder = BertEncoder(SHAPE, LAYERS)
        self.pooler = BertPooler()

    def forward(self, input_ids, attention_mask):
        # Hugging Face's get_extended_attention_mask.
        extended = (1.0 - attention_mask[:, None, None, :]) * torch.finfo(torch.float32).min
        hidden = self.encoder(self.embeddings(input_ids), extended)
        return hidden, self.pooler(hidden)


class BertForSequenceClassification(nn.Module):
    def __init__(self):
        super().__init__()
        self.bert = BertModel()
        self.classifier = nn.Linear(HIDDEN, LABELS)

    def forward(self, input_ids, attention_mask):
        hidden, pooled = self.bert(input_ids, attention_mask)
        return self.classifier(pooled), hidden


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    torch.manual_seed(0)
    model = BertForSequenceClassification().eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "LayerNorm" in name:  # weight near 1, bias near 0, both random
                p.copy_((1.0 if name.endswith("weight") else 0.0) + 0.2 * torch.randn_like(p))
            elif name.endswith("bias"):
                p.copy_(0.1 * torch.randn_like(p))
        input_ids = torch.randint(0, VOCAB, (BATCH, SEQ))
        attention_mask = torch.ones(BATCH, SEQ)
        attention_mask[1, SEQ - PADDED_TOKENS:] = 0
        logits, hidden = model(input_ids, attention_mask.float())
    save_safetensors({k: v.float() for k, v in model.state_dict().items()}, sys.argv[1])
    config = torch.tensor([VOCAB, HIDDEN, LAYERS, HEADS, INTERMEDIATE, MAX_POSITIONS, TYPE_VOCAB,
                           LABELS, EPS], dtype=torch.float32)
    save_safetensors({"input_ids": input_ids.float(), "attention_mask": attention_mask,
                      "logits": logits, "last_hidden_state": hidden, "config": config},
                     sys.argv[2])
    print(f"logits {logits.tolist()}")


if __name__ == "__main__":
    main()
