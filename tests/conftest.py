import pytest

SMALL_SYNTHETIC = "synthetic:train=40,validation=8,test=8"


@pytest.fixture
def data_dir(tmp_path):
    """A fresh folder for prepared sources, so each test prepares what it reads."""
    return tmp_path / "prepared"
