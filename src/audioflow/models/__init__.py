"""Model code with plain arguments (no config objects; builders.py reads the config).

- ``seanet``: SEANet convolutional encoder/decoder (causal or not, optional LSTM);
- ``quantizer``: residual vector quantizer with EMA codebooks;
- ``encodec``: the codec (encoder -> quantizer -> decoder);
- ``discriminator``: multi-scale STFT discriminator;
- ``package``: exported codec packages (write/load);
- ``builders``: config -> models.
"""
