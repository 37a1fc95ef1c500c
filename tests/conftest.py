import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))


@pytest.fixture(autouse=True)
def _seed():
    import numpy as np
    import torch
    torch.manual_seed(0)
    np.random.seed(0)
