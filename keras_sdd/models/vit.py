"""Vision Transformer for small images (the CIFAR-10 ViT of the ViT sparse-double-descent studies).

Defaults follow the lucidrains/kentaroy47 CIFAR-10 ViT: patch 4, dim 512, depth 6, heads 8, MLP dim 512,
dropout 0.1, embedding dropout 0.1, no bias on the q/k/v projections. Layout: patches -> Dense patch embedding
(``patch_embedding="conv"`` uses a stride-``patch_size`` Conv2D instead), learnable class token, learnable
position embedding, dropout, ``depth`` pre-norm blocks [LayerNorm -> multi-head self-attention -> dropout ->
residual; LayerNorm -> Dense(mlp_dim, GELU) -> dropout -> Dense(dim) -> dropout -> residual], final LayerNorm,
class token -> Dense "logits".

Everything is a built-in tf_keras layer except three small layers defined here (the weightless attention core,
the class token, the position embedding): tfmot ``PrunableLayer``s with nothing to prune, so
``prune_low_magnitude`` accepts the whole model. The attention's q/k/v/output projections are top-level Dense
layers (``block<i>_query``, ``_key``, ``_value``, ``_attention_output``), pruned like every other Dense kernel,
also by code that wraps only the Dense layers. ``width`` is ``dim``; ``depth`` is the number of blocks; the
rest are options.
"""
from __future__ import annotations

import keras_sdd.legacy_keras  # noqa: F401  (pins Keras 2 before TensorFlow loads)
import tensorflow as tf
import tensorflow_model_optimization as tfmot
import tf_keras

from keras_sdd.errors import ConfigError
from keras_sdd.models.registry import (ModelSpec, Seeds, choice, flag, positive_int, rate, refuse, register,
                                       require_image, take_options)

OPTIONS = {
    "patch_size": 4, "dim": 512, "heads": 8, "mlp_dim": 512, "dropout": 0.1, "emb_dropout": 0.1,
    "qkv_bias": False, "patch_embedding": "dense",
}
DEFAULT_DEPTH = 6
LN_EPSILON = 1e-5  # PyTorch's, as in the reference implementation

_PrunableLayer = tfmot.sparsity.keras.PrunableLayer
_serializable = tf_keras.saving.register_keras_serializable(package="keras_sdd")


@_serializable
class ClassToken(tf_keras.layers.Layer, _PrunableLayer):
    """Prepends one learnable token to a (batch, tokens, dim) sequence. Not pruned."""

    def __init__(self, initializer="zeros", **kwargs):
        super().__init__(**kwargs)
        self.initializer = tf_keras.initializers.get(initializer)

    def build(self, input_shape):
        self.token = self.add_weight("token", shape=(1, 1, input_shape[-1]), initializer=self.initializer)
        super().build(input_shape)

    def call(self, inputs):
        token = tf.cast(self.token, inputs.dtype)
        token = tf.broadcast_to(token, tf.stack([tf.shape(inputs)[0], 1, tf.shape(inputs)[-1]]))
        return tf.concat([token, inputs], axis=1)

    def compute_output_shape(self, input_shape):
        input_shape = tf.TensorShape(input_shape)
        tokens = None if input_shape[1] is None else input_shape[1] + 1
        return tf.TensorShape([input_shape[0], tokens, input_shape[2]])

    def get_prunable_weights(self):
        return []

    def get_config(self):
        return {**super().get_config(), "initializer": tf_keras.initializers.serialize(self.initializer)}


@_serializable
class PositionEmbedding(tf_keras.layers.Layer, _PrunableLayer):
    """Adds a learnable (tokens, dim) embedding to a (batch, tokens, dim) sequence. Not pruned."""

    def __init__(self, initializer="zeros", **kwargs):
        super().__init__(**kwargs)
        self.initializer = tf_keras.initializers.get(initializer)

    def build(self, input_shape):
        self.embedding = self.add_weight("embedding", shape=(1, input_shape[1], input_shape[2]),
                                         initializer=self.initializer)
        super().build(input_shape)

    def call(self, inputs):
        return inputs + tf.cast(self.embedding, inputs.dtype)

    def compute_output_shape(self, input_shape):
        return tf.TensorShape(input_shape)

    def get_prunable_weights(self):
        return []

    def get_config(self):
        return {**super().get_config(), "initializer": tf_keras.initializers.serialize(self.initializer)}


@_serializable
class DotProductAttention(tf_keras.layers.Layer, _PrunableLayer):
    """Multi-head scaled dot-product attention on already projected [query, key, value], each (batch, tokens,
    dim): softmax(q k^T / sqrt(dim / num_heads)) v per head, heads concatenated back to (batch, tokens, dim).

    Weightless: the q/k/v/output projections are ordinary top-level Dense layers of the model, so every pruning
    path (whole-model ``prune_low_magnitude`` or wrapping only the Dense layers) sees and prunes them.
    ``dropout`` applies to the attention probabilities.
    """

    def __init__(self, num_heads: int, dropout: float = 0.0, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.num_heads = num_heads
        self.dropout = dropout
        self.seed = seed
        self.attention_dropout = tf_keras.layers.Dropout(dropout, seed=seed, name="attention_dropout")

    def build(self, input_shape):
        dim = int(input_shape[0][-1])
        if dim % self.num_heads:
            raise ConfigError(f"attention dim {dim} is not divisible by num_heads {self.num_heads}")
        super().build(input_shape)

    def call(self, inputs, training=None):
        query, key, value = inputs
        batch, tokens, dim = tf.shape(query)[0], tf.shape(query)[1], query.shape[-1]
        head_dim = dim // self.num_heads

        def split_heads(x):  # (batch, tokens, dim) -> (batch, heads, tokens, head_dim)
            return tf.transpose(tf.reshape(x, tf.stack([batch, -1, self.num_heads, head_dim])), [0, 2, 1, 3])

        q, k, v = split_heads(query), split_heads(key), split_heads(value)
        scores = tf.matmul(q, k, transpose_b=True) * tf.cast(head_dim ** -0.5, q.dtype)
        attention = self.attention_dropout(tf.nn.softmax(scores, axis=-1), training=training)
        out = tf.transpose(tf.matmul(attention, v), [0, 2, 1, 3])
        return tf.reshape(out, tf.stack([batch, tokens, dim]))

    def compute_output_shape(self, input_shape):
        return tf.TensorShape(input_shape[0])

    def get_prunable_weights(self):
        return []

    def get_config(self):
        return {**super().get_config(), "num_heads": self.num_heads, "dropout": self.dropout, "seed": self.seed}


def build_vit(input_shape, num_classes: int, seeds: Seeds, depth: int, patch_size: int, dim: int, heads: int,
              mlp_dim: int, dropout: float, emb_dropout: float, qkv_bias: bool, patch_embedding: str,
              name: str = "vit"):
    layers = tf_keras.layers
    height, width, channels = input_shape
    p = patch_size
    grid_h, grid_w = height // p, width // p
    patches = grid_h * grid_w
    inputs = tf_keras.Input(shape=tuple(input_shape), name="input")
    if patch_embedding == "dense":  # 'b (h p1) (w p2) c -> b (h w) (p1 p2 c)', then Dense
        x = layers.Reshape((grid_h, p, grid_w, p, channels), name="patchify")(inputs)
        x = layers.Permute((1, 3, 2, 4, 5), name="patch_order")(x)
        x = layers.Reshape((patches, p * p * channels), name="patches")(x)
        x = layers.Dense(dim, kernel_initializer=seeds.glorot_uniform("patch_embedding"),
                         name="patch_embedding")(x)
    else:
        x = layers.Conv2D(dim, p, strides=p, kernel_initializer=seeds.glorot_uniform("patch_embedding"),
                          name="patch_embedding")(inputs)
        x = layers.Reshape((patches, dim), name="patches")(x)
    x = ClassToken(name="class_token")(x)
    x = PositionEmbedding(seeds.truncated_normal("position_embedding", 0.02), name="position_embedding")(x)
    x = layers.Dropout(emb_dropout, seed=seeds.of("embedding_dropout"), name="embedding_dropout")(x)
    for i in range(1, depth + 1):
        b = f"block{i}"
        y = layers.LayerNormalization(epsilon=LN_EPSILON, name=f"{b}_norm1")(x)
        q, k, v = (layers.Dense(dim, use_bias=qkv_bias, kernel_initializer=seeds.glorot_uniform(f"{b}_{p}"),
                                name=f"{b}_{p}")(y) for p in ("query", "key", "value"))
        y = DotProductAttention(heads, dropout=dropout, seed=seeds.of(f"{b}_attention"), name=f"{b}_attention")(
            [q, k, v])
        y = layers.Dense(dim, kernel_initializer=seeds.glorot_uniform(f"{b}_attention_output"),
                         name=f"{b}_attention_output")(y)
        y = layers.Dropout(dropout, seed=seeds.of(f"{b}_attention_dropout"), name=f"{b}_attention_dropout")(y)
        x = layers.Add(name=f"{b}_add1")([x, y])
        y = layers.LayerNormalization(epsilon=LN_EPSILON, name=f"{b}_norm2")(x)
        y = layers.Dense(mlp_dim, activation="gelu", kernel_initializer=seeds.glorot_uniform(f"{b}_mlp1"),
                         name=f"{b}_mlp1")(y)
        y = layers.Dropout(dropout, seed=seeds.of(f"{b}_mlp_dropout1"), name=f"{b}_mlp_dropout1")(y)
        y = layers.Dense(dim, kernel_initializer=seeds.glorot_uniform(f"{b}_mlp2"), name=f"{b}_mlp2")(y)
        y = layers.Dropout(dropout, seed=seeds.of(f"{b}_mlp_dropout2"), name=f"{b}_mlp_dropout2")(y)
        x = layers.Add(name=f"{b}_add2")([x, y])
    x = layers.LayerNormalization(epsilon=LN_EPSILON, name="final_norm")(x)
    x = layers.Cropping1D((0, patches), name="class_token_select")(x)  # keep token 0 (built-in, prunable-safe)
    x = layers.Flatten(name="class_token_flatten")(x)
    logits = layers.Dense(num_classes, kernel_initializer=seeds.glorot_uniform("logits"), name="logits")(x)
    return tf_keras.Model(inputs, logits, name=name)


def _resolve(width, depth, hidden, options):
    refuse("vit", "use width (= dim), depth and the options patch_size, heads, mlp_dim, ...", hidden=hidden)
    opts = take_options("vit", options, OPTIONS)
    if width is not None and "dim" in options and options["dim"] != width:
        raise ConfigError(f"vit width is dim: got width={width!r} and dim={options['dim']!r}; give one")
    cfg = {
        "depth": positive_int("vit depth (transformer blocks)", DEFAULT_DEPTH if depth is None else depth),
        "dim": positive_int("vit dim (width)", opts["dim"] if width is None else width),
        "patch_size": positive_int("vit patch_size", opts["patch_size"]),
        "heads": positive_int("vit heads", opts["heads"]),
        "mlp_dim": positive_int("vit mlp_dim", opts["mlp_dim"]),
        "dropout": rate("vit dropout", opts["dropout"]),
        "emb_dropout": rate("vit emb_dropout", opts["emb_dropout"]),
        "qkv_bias": flag("vit qkv_bias", opts["qkv_bias"]),
        "patch_embedding": choice("vit patch_embedding", opts["patch_embedding"], ("dense", "conv")),
    }
    if cfg["dim"] % cfg["heads"]:
        divisors = [h for h in range(1, cfg["dim"] + 1) if cfg["dim"] % h == 0]
        raise ConfigError(f"vit dim {cfg['dim']} must be divisible by heads {cfg['heads']}; valid heads for this "
                          f"dim: {', '.join(map(str, divisors))}")
    return cfg


def _check_input(cfg, input_shape):
    require_image("vit", input_shape)
    p = cfg["patch_size"]
    if input_shape[0] % p or input_shape[1] % p:
        divisors = [d for d in range(1, min(input_shape[:2]) + 1)
                    if input_shape[0] % d == 0 and input_shape[1] % d == 0]
        raise ConfigError(f"vit image size {input_shape[0]}x{input_shape[1]} is not divisible by patch_size {p}; "
                          f"valid patch sizes: {', '.join(map(str, divisors))}")


#: For loading legacy (HDF5) saves of wrapped ViTs: ``custom_object_scope(CUSTOM_OBJECTS)``.
CUSTOM_OBJECTS = {cls.__name__: cls for cls in (ClassToken, PositionEmbedding, DotProductAttention)}

register(ModelSpec(name="vit", resolve=_resolve, check_input=_check_input,
                   make=lambda shape, classes, seeds, cfg: build_vit(shape, classes, seeds=seeds, **cfg)))
