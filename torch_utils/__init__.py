"""PyTorch helpers: misc utilities, persistent classes, training statistics and custom ops."""
