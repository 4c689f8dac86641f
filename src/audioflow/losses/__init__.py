"""Training losses: spectral (multi-scale mel, multi-resolution STFT), the weighted codec
reconstruction objective (``codec``) and adversarial hinge/feature-matching losses."""
