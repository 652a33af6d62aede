"""Model files and runtimes shared by serving and training: digests, export, the ONNX
detector runner and the GGUF runner. No Ray here."""
