"""Encoders: the cuts, their shapes, the preprocessing inside, weights and errors."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from data_pipeline.errors import UserError
from hjr.config import configure
from hjr.core import layers
from hjr.core.backbones import BACKBONES, build_encoder
from hjr.core.layers import CaffePreprocess
from hjr.core.model import build_model

# keras' saving calls np.array on its variables, which numpy 2 flags on every one
pytestmark = pytest.mark.filterwarnings(
    "ignore:__array__ implementation:DeprecationWarning"
)

PREPROCESS_INPUT = {
    "resnet50": keras.applications.resnet.preprocess_input,
    "resnet50v2": keras.applications.resnet_v2.preprocess_input,
}


def _images(n=2, size=128):
    """uint8-valued float32 [n, size, size, 3], what the pipeline feeds."""
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (n, size, size, 3)).astype("float32")


def _convs(model):
    return [
        layer.name for layer in model.layers if isinstance(layer, keras.layers.Conv2D)
    ]


@pytest.fixture(scope="module")
def resnet152v2():
    return build_encoder("resnet152v2", None)


@pytest.fixture(scope="module")
def weights_files(tmp_path_factory):
    """backbone -> {format: path} of a random full notop net at 128x128, and the
    net's cut features of _images() fed through keras' own preprocess_input."""
    folder = tmp_path_factory.mktemp("weights")
    files = {}
    for backbone, preprocess_input in PREPROCESS_INPUT.items():
        app, cut, _ = BACKBONES[backbone]
        net = getattr(keras.applications, app)(
            include_top=False, weights=None, input_shape=(128, 128, 3)
        )
        net.save_weights(folder / f"{backbone}.weights.h5")
        net.save(folder / f"{backbone}.h5")  # legacy HDF5, as keras' *_notop.h5
        bare = keras.Model(net.input, net.get_layer(cut).output)
        files[backbone] = {
            "weights.h5": folder / f"{backbone}.weights.h5",
            "h5": folder / f"{backbone}.h5",
            "features": np.asarray(bare(preprocess_input(_images()))),
        }
    return files


def test_resnet152v2_is_the_papers_encoder(resnet152v2):
    encoder = resnet152v2
    assert encoder.name == "resnet152v2_encoder"
    assert encoder.layers[-1].name == "conv4_block36_out"
    assert encoder.output.shape == (None, 4, 4, 1024)
    assert not [x.name for x in encoder.layers if x.name.startswith(("conv5", "post"))]
    # The paper counts 142 = conv1 + 3 x (3 + 8 + 36) bottleneck convs; keras has
    # three more: the 1x1 projection shortcuts of conv2/3/4_block1 (conv5's is cut).
    convs = _convs(encoder)
    shortcuts = [name for name in convs if name.endswith("_0_conv")]
    assert shortcuts == [
        "conv2_block1_0_conv",
        "conv3_block1_0_conv",
        "conv4_block1_0_conv",
    ]
    assert len(convs) == 142 + 3


def test_resnet152v1_keeps_stride_16():
    encoder = build_encoder("resnet152", "none")
    assert encoder.layers[-1].name == "conv4_block36_out"
    assert encoder.output.shape == (None, 8, 8, 1024)
    assert len(_convs(encoder)) == 142 + 3
    assert isinstance(encoder.get_layer("preprocess"), CaffePreprocess)


def test_v2_preprocessing_is_the_first_layer(resnet152v2):
    encoder, images = resnet152v2, _images()
    preprocess = encoder.get_layer("preprocess")
    assert encoder.get_layer("conv1_pad").input is preprocess.output
    got = keras.Model(encoder.input, preprocess.output)(images)
    expected = keras.applications.resnet_v2.preprocess_input(images.copy())
    np.testing.assert_allclose(got, expected, atol=1e-6)


def test_caffe_preprocess_matches_keras_and_round_trips(tmp_path):
    model = keras.Sequential([keras.Input((16, 16, 3)), CaffePreprocess()])
    images = _images(size=16)
    expected = keras.applications.resnet.preprocess_input(images.copy())
    np.testing.assert_allclose(model(images), expected, atol=1e-4)
    model.save(tmp_path / "caffe.keras")
    loaded = keras.saving.load_model(tmp_path / "caffe.keras")
    np.testing.assert_allclose(loaded(images), expected, atol=1e-4)


def test_tiny_shapes_and_round_trip(tmp_path):
    encoder = build_encoder("tiny", None)
    assert encoder.name == "tiny_encoder"
    assert encoder.output.shape == (None, 8, 8, 128)
    assert encoder.count_params() < 400_000
    features = encoder(_images())
    assert features.shape == (2, 8, 8, 128)
    assert np.isfinite(features).all()
    encoder.save(tmp_path / "tiny.keras")
    loaded = keras.saving.load_model(tmp_path / "tiny.keras")
    np.testing.assert_allclose(loaded(_images()), features, atol=1e-6)
    encoder.save_weights(tmp_path / "tiny.weights.h5")
    reloaded = build_encoder("tiny", tmp_path / "tiny.weights.h5")
    np.testing.assert_allclose(reloaded(_images()), features, atol=1e-6)


def test_tiny_unet_decodes_its_stride_32_features_to_stride_4():
    encoder = build_encoder("tiny_unet", None)
    assert encoder.output.shape == (None, 32, 32, 64)
    assert encoder.get_layer("block3_out").output.shape == (None, 4, 4, 256)
    assert encoder.get_layer("stem_a_relu").output.shape == (None, 64, 64, 16)
    features = np.asarray(encoder(_images(2)))
    assert np.isfinite(features).all() and features.std() > 0


@pytest.mark.parametrize("compiled", [False, True])
def test_fused_batch_norm_trains_as_keras_batch_norm(compiled):
    """hjr's BatchNormalization (one fused op when training on TensorFlow) gives Keras'
    outputs, gradients and moving statistics, and is in the tiny backbones."""
    rng = np.random.default_rng(0)
    x = tf.constant(rng.normal(2.0, 3.0, (4, 6, 6, 8)).astype("float32"))
    weight = tf.constant(rng.normal(size=(4, 6, 6, 8)).astype("float32"))
    norms = [
        layers.BatchNormalization(momentum=0.9),
        keras.layers.BatchNormalization(momentum=0.9),
    ]
    results = []
    for norm in norms:
        norm.build(x.shape)
        norm.gamma.assign(np.linspace(0.5, 2.0, 8))
        norm.beta.assign(np.linspace(-1.0, 1.0, 8))

        def step(x, norm=norm):
            with tf.GradientTape() as tape:
                tape.watch(x)
                loss = tf.reduce_sum(tf.square(norm(x, training=True)) * weight)
            return [loss, *tape.gradient(loss, [x, norm.gamma, norm.beta])]

        if compiled:
            step = tf.function(step)
            graph = step.get_concrete_function(x).graph
            fused = any("FusedBatchNorm" in op.type for op in graph.get_operations())
            assert fused == isinstance(norm, layers.BatchNormalization)
        outputs = step(x)
        statistics = [norm.moving_mean, norm.moving_variance]
        results.append([np.asarray(v) for v in outputs + statistics])
    for ours, theirs in zip(*results):
        np.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=1e-4)
    assert not np.allclose(results[0][-1], 1.0)  # the variance moved
    encoder = build_encoder("tiny_unet", None)
    assert isinstance(encoder.get_layer("stem_bn"), layers.BatchNormalization)


def test_weights_saved_with_keras_batch_norm_load(tmp_path, monkeypatch):
    """Runs trained before hjr's BatchNormalization (tiny backbones with Keras'
    layer) load into today's network, every weight where it was."""
    conf = configure("quick", {"head": "offsets"})
    with monkeypatch.context() as patch:
        patch.setattr(layers, "BatchNormalization", keras.layers.BatchNormalization)
        old = build_model(conf)
    encoder = old.get_layer(f"{conf['backbone']}_encoder")
    assert not any(isinstance(x, layers.BatchNormalization) for x in encoder.layers)
    rng = np.random.default_rng(1)
    for variable in old.weights:  # moving statistics included
        variable.assign(rng.uniform(0.5, 1.5, variable.shape).astype("float32"))
    old.save_weights(tmp_path / "old.weights.h5")
    new = build_model(conf)
    new.load_weights(tmp_path / "old.weights.h5")
    for ours, theirs in zip(new.weights, old.weights):
        np.testing.assert_array_equal(np.asarray(ours), np.asarray(theirs))


@pytest.mark.parametrize("backbone", ["tiny", "resnet50"])
def test_builds_under_mixed_precision_in_a_strategy(backbone):
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        with tf.distribute.MirroredStrategy(["/cpu:0"]).scope():
            encoder = build_encoder(backbone, None, input_size=64)
        features = encoder(_images(1, 64))
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert encoder.get_layer("preprocess").compute_dtype == "float16"
    assert features.dtype == "float16"
    assert np.isfinite(np.asarray(features, "float32")).all()


@pytest.mark.parametrize("backbone", ["resnet50", "resnet50v2"])
@pytest.mark.parametrize("file_format", ["weights.h5", "h5"])
@pytest.mark.slow
def test_local_weights_give_the_source_nets_features(
    backbone, file_format, weights_files
):
    encoder = build_encoder(backbone, str(weights_files[backbone][file_format]))
    expected = weights_files[backbone]["features"]
    np.testing.assert_allclose(encoder(_images()), expected, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize(
    "backbone, source", [("resnet50", "resnet50v2"), ("resnet50v2", "resnet50")]
)
@pytest.mark.parametrize("file_format", ["weights.h5", "h5"])
@pytest.mark.slow
def test_weights_of_another_net_are_a_user_error(
    backbone, source, file_format, weights_files
):
    path = weights_files[source][file_format]
    name = BACKBONES[backbone][0]
    with pytest.raises(UserError, match=f"not {name} notop weights") as error:
        build_encoder(backbone, str(path))
    assert str(error.value).startswith(f"weights '{path}': ")
    assert error.value.describe("--weights").startswith(f"--weights {path}: ")
    assert "\n" not in str(error.value)


@pytest.mark.parametrize("name", ["junk.h5", "junk.weights.h5", "junk.txt"])
def test_a_file_that_is_no_weights_is_a_user_error(name, tmp_path):
    path = tmp_path / name
    path.write_text("not weights\n")
    with pytest.raises(UserError, match="not ResNet50V2 notop weights") as error:
        build_encoder("resnet50v2", str(path))
    assert "\n" not in str(error.value)


def test_imagenet_without_network_is_a_user_error(monkeypatch):
    from keras.src.utils import file_utils  # the module keras' resnet.py calls

    def no_network(fname, origin, *args, **kwargs):
        raise Exception(
            f"URL fetch failure on {origin}: None -- [Errno -3] "
            "Temporary failure in name resolution"
        )

    monkeypatch.setattr(file_utils, "get_file", no_network)
    with pytest.raises(UserError) as error:
        build_encoder("resnet50v2", "imagenet")
    message = str(error.value)
    assert message.startswith("weights 'imagenet': could not download")
    assert "ResNet50V2" in message and "name resolution" in message
    assert "resnet50v2_weights_tf_dim_ordering_tf_kernels_notop.h5" in message
    assert "or none" in message and "\n" not in message


@pytest.mark.parametrize(
    "backbone, weights, expected",
    [
        ("resnet152v2", "/no/such/file.h5", "weights '/no/such/file.h5': no such file"),
        ("tiny", "imagenet", "weights 'imagenet': the tiny backbone has no ImageNet"),
        ("resnet18", None, "backbone 'resnet18': expected one of resnet50, "),
    ],
)
def test_bad_arguments_are_user_errors(backbone, weights, expected):
    with pytest.raises(UserError) as error:
        build_encoder(backbone, weights)
    assert str(error.value).startswith(expected)
    assert "\n" not in str(error.value)
