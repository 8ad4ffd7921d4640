"""Text recognition (OCR) of single text lines: CRNN (CNN + BiLSTM + CTC) and a Transformer recogniser."""
