import pytest

SMALL_SYNTHETIC = "synthetic:train=40,validation=8,test=8"


@pytest.fixture
def data_dir(tmp_path):
    """A fresh folder for prepared sources, so each test prepares what it reads."""
    return tmp_path / "prepared"


def train_small_run(run_dir, data_dir, head="classification", steps=2):
    """A tiny-backbone run of a few steps on SMALL_SYNTHETIC; returns its folder."""
    from hjr.config import resolve
    from hjr.train import train

    overrides = dict(head=head, data=SMALL_SYNTHETIC, steps=steps, eval_every=steps)
    conf = resolve("quick", dict(overrides, batch_size=8))
    conf["data_dir"] = str(data_dir)
    return train(conf, run_dir)
