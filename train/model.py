"""The convolutional autoencoder and the classifier built on its encoder.

Only ops that quantize to int8 and map to the Edge TPU: Conv2D, Conv2DTranspose (decoder only, it
is never deployed on the TPU), BatchNormalization (folded into the convolutions at conversion),
ReLU, global average pooling, Dropout (identity at inference), Dense and Softmax. Static shapes, no
resize ops inside the model: resizing happens in preprocessing, outside the graph.

Encoder (width w):       48x48x1 -> 48x48xw -> 24x24x2w -> 12x12x4w -> 12x12x4w -> 6x6x8w
                         -> 1x1 conv -> 6x6xL  (the bottleneck; L*36 < 2304 input values)
Decoder:                 6x6xL -> 12x12x4w -> 24x24x2w -> 48x48xw -> 48x48x1 (sigmoid)
Classifier:              encoder -> 3x3 conv (8w) -> GAP -> dropout -> dense(7) softmax

``arch="res"`` (the default since 0.2) keeps that shape but adds a residual block (two 3x3 convs
and an ADD, int8- and Edge-TPU-friendly) after the 12x12 and 6x6 transitions, and takes the 6x6
transition straight from 12x12x4w:

Encoder res (width w):   48x48x1 -> 48x48xw -> 24x24x2w -> 12x12x4w -> [res 4w] -> 6x6x8w -> [res 8w]
                         -> 1x1 conv -> 6x6xL

``arch="res2"`` adds a second residual block at 6x6 (``[res 8w] -> [res 8w]``): depth where it is
cheapest per parameter (6x6 maps), for a budget in latency rather than in weights.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from edge_fer.train.options import ARCHS, TrainConfig

from edge_fer.labels import NUM_CLASSES

INPUT_SIZE = 48


@dataclass(frozen=True)
class NetConfig:
    """The network's shape; the defaults are ``edge-fer train``'s (:class:`TrainConfig`)."""

    width: int = TrainConfig.width
    latent_channels: int = TrainConfig.latent_channels
    arch: str = TrainConfig.arch
    dropout: float = TrainConfig.dropout
    weight_decay: float = TrainConfig.weight_decay
    num_classes: int = NUM_CLASSES
    input_size: int = INPUT_SIZE

    @classmethod
    def from_train(cls, cfg: TrainConfig, num_classes: int) -> NetConfig:
        return cls(
            width=cfg.width,
            latent_channels=cfg.latent_channels,
            arch=cfg.arch,
            dropout=cfg.dropout,
            weight_decay=cfg.weight_decay,
            num_classes=num_classes,
        )

    @property
    def bottleneck_size(self) -> int:
        s = self.input_size // 8
        return s * s * self.latent_channels

    def to_dict(self) -> dict:
        return asdict(self)


def _conv_bn_relu(x, filters: int, strides: int, name: str, wd: float):
    import keras

    x = keras.layers.Conv2D(
        filters,
        3,
        strides=strides,
        padding="same",
        use_bias=False,
        kernel_regularizer=keras.regularizers.l2(wd) if wd else None,
        name=f"{name}_conv",
    )(x)
    x = keras.layers.BatchNormalization(name=f"{name}_bn")(x)
    return keras.layers.ReLU(name=f"{name}_relu")(x)


def _res_block(x, filters: int, name: str, wd: float):
    import keras

    y = _conv_bn_relu(x, filters, 1, f"{name}_a", wd)
    y = keras.layers.Conv2D(
        filters,
        3,
        padding="same",
        use_bias=False,
        kernel_regularizer=keras.regularizers.l2(wd) if wd else None,
        name=f"{name}_b_conv",
    )(y)
    y = keras.layers.BatchNormalization(name=f"{name}_b_bn")(y)
    x = keras.layers.Add(name=f"{name}_add")([x, y])
    return keras.layers.ReLU(name=f"{name}_relu")(x)


def build_encoder(cfg: NetConfig):
    import keras

    if cfg.bottleneck_size >= cfg.input_size * cfg.input_size:
        raise ValueError(
            f"bottleneck {cfg.bottleneck_size} is not smaller than the input "
            f"({cfg.input_size}x{cfg.input_size}): the autoencoder would not be undercomplete"
        )
    if cfg.arch not in ARCHS:
        raise ValueError(f"unknown architecture {cfg.arch!r} (choose from {', '.join(ARCHS)})")
    w, wd = cfg.width, cfg.weight_decay
    inp = keras.Input((cfg.input_size, cfg.input_size, 1), name="image")
    x = _conv_bn_relu(inp, w, 1, "enc1", wd)
    x = _conv_bn_relu(x, 2 * w, 2, "enc2", wd)
    x = _conv_bn_relu(x, 4 * w, 2, "enc3", wd)
    if cfg.arch in ("res", "res2"):
        x = _res_block(x, 4 * w, "enc4", wd)
        x = _conv_bn_relu(x, 8 * w, 2, "enc5", wd)
        x = _res_block(x, 8 * w, "enc6", wd)
        if cfg.arch == "res2":
            x = _res_block(x, 8 * w, "enc7", wd)
    else:
        x = _conv_bn_relu(x, 4 * w, 1, "enc4", wd)
        x = _conv_bn_relu(x, 8 * w, 2, "enc5", wd)
    x = keras.layers.Conv2D(cfg.latent_channels, 1, padding="same", name="bottleneck")(x)
    return keras.Model(inp, x, name="encoder")


def build_decoder(cfg: NetConfig):
    import keras

    w, s = cfg.width, cfg.input_size // 8
    inp = keras.Input((s, s, cfg.latent_channels), name="code")
    x = inp
    for i, f in enumerate((4 * w, 2 * w, w), start=1):
        x = keras.layers.Conv2DTranspose(f, 3, strides=2, padding="same", use_bias=False, name=f"dec{i}_convt")(x)
        x = keras.layers.BatchNormalization(name=f"dec{i}_bn")(x)
        x = keras.layers.ReLU(name=f"dec{i}_relu")(x)
    x = keras.layers.Conv2D(1, 3, padding="same", activation="sigmoid", name="reconstruction")(x)
    return keras.Model(inp, x, name="decoder")


def build_autoencoder(encoder, decoder):
    import keras

    inp = keras.Input(encoder.input_shape[1:], name="image")
    return keras.Model(inp, decoder(encoder(inp)), name="autoencoder")


def build_classifier(encoder, cfg: NetConfig):
    """encoder + head. The returned model is what convert/ quantizes."""
    import keras

    inp = keras.Input(encoder.input_shape[1:], name="image")
    x = encoder(inp)
    x = _conv_bn_relu(x, 8 * cfg.width, 1, "head", cfg.weight_decay)
    x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    x = keras.layers.Dropout(cfg.dropout, name="dropout")(x)
    x = keras.layers.Dense(cfg.num_classes, name="logits")(x)
    out = keras.layers.Softmax(name="probs")(x)
    return keras.Model(inp, out, name="fer_classifier")
