"""GAN evaluation metrics: FID, KID, precision/recall, Inception Score and perceptual path length."""
