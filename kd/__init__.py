"""KD-DLGAN's knowledge distillation from a frozen CLIP teacher into the discriminator.

teacher (CLIP via open_clip), prompts (text prompts), agkd and cgkd (the two losses), heads (D's
KD head), loss (KDTerms, what the training loss calls). See docs/kd.md.
"""
