"""Importing pixelmind is cheap and changes nothing global."""

import subprocess
import sys


def test_import_is_lazy_and_side_effect_free():
    code = (
        "import sys, warnings; before = list(warnings.filters); import pixelmind; "
        "heavy = [m for m in ('torch', 'timm', 'accelerate', 'matplotlib', 'PIL') if m in sys.modules]; "
        "assert not heavy, heavy; assert warnings.filters == before; print(pixelmind.__version__)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == __import__("pixelmind").__version__


def test_model_is_reachable_from_the_package():
    import pixelmind

    assert pixelmind.Model.__name__ == "Model"
