"""The patient portrait (画像) and the insights panel of the 360 page: behaviour, sentiment of the
patient's messages, segment, risk and its reasons."""
