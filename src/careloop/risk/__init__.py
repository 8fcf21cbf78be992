"""Risk prediction: a non-adherence / drop-out model trained on the record and behaviour, with a
model card, per-patient reasons, scheduled scoring and drift monitoring."""
