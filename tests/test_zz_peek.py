import sys; sys.path.insert(0, "/work/main/tests")
from test_masked_optimizers import *
from test_masked_optimizers import _leaves_with_names
def test_peek(trained):
    params = _leaves_with_names(trained["state"].params)
    params0 = _leaves_with_names(trained["params0"])
    mask = masks.to_flat_dict(trained["mask"])
    print(trained["name"], trained["before"], trained["after"], [round(c,3) for c in trained["chunks"]],
          {n: round(float(np.mean(v[mask[n]] != params0[n][mask[n]]) if n in mask else np.mean(v != params0[n])),3) for n, v in params.items()})
