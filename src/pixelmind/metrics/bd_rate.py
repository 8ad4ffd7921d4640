"""Bjøntegaard delta rate and PSNR: how much less rate (or how much more quality) one codec needs than another.

Example:
    >>> round(bd_rate([0.1, 0.2, 0.4, 0.8], [28, 31, 34, 37], [0.08, 0.16, 0.32, 0.64], [28, 31, 34, 37]), 6)
    -20.0
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

_BD_METHODS = {"cubic": 4, "pchip": 2}  # method -> minimum points per curve


def _curve(rate: Sequence[float], quality: Sequence[float], name: str, method: str) -> tuple[np.ndarray, np.ndarray]:
    r = np.asarray(rate, dtype=np.float64)
    q = np.asarray(quality, dtype=np.float64)
    if r.ndim != 1 or r.shape != q.shape:
        raise ValueError(f"{name}: rates and qualities must be 1-D of equal length, got {r.shape} and {q.shape}")
    need = _BD_METHODS[method]
    if r.size < need:
        raise ValueError(f"{name}: method={method!r} needs at least {need} points per curve, got {r.size}")
    if not (np.isfinite(r).all() and np.isfinite(q).all()) or (r <= 0).any():
        raise ValueError(f"{name}: rates must be positive and all values finite")
    return np.log10(r), q


def _mean_gap(x_a: np.ndarray, y_a: np.ndarray, x_b: np.ndarray, y_b: np.ndarray, method: str, axis: str) -> float:
    """Mean of ``y_b(x) - y_a(x)`` over the overlap of the two ``x`` ranges (exact integrals)."""
    lo, hi = max(x_a.min(), x_b.min()), min(x_a.max(), x_b.max())
    if not hi > lo:
        raise ValueError(
            f"the {axis} ranges do not overlap: anchor [{x_a.min():.4g}, {x_a.max():.4g}], "
            f"test [{x_b.min():.4g}, {x_b.max():.4g}]"
        )
    integrals = []
    for x, y in ((x_a, y_a), (x_b, y_b)):
        if method == "cubic":
            # VCEG-M33: least-squares cubic through the points (exact through 4), integrated analytically.
            antiderivative = np.polyint(np.polyfit(x, y, 3))
            integrals.append(np.polyval(antiderivative, hi) - np.polyval(antiderivative, lo))
        else:
            from scipy.interpolate import PchipInterpolator

            order = np.argsort(x, kind="stable")
            xs, ys = x[order], y[order]
            if (np.diff(xs) <= 0).any():
                raise ValueError(f"method='pchip' needs distinct {axis} values per curve, got repeated values")
            # The JVET CTC sheet integrates the Hermite cubics exactly, not by sampling.
            integrals.append(float(PchipInterpolator(xs, ys, extrapolate=False).integrate(lo, hi)))
    return float((integrals[1] - integrals[0]) / (hi - lo))


def _check_method(method: str) -> None:
    if method not in _BD_METHODS:
        raise ValueError(f"unknown BD method {method!r}; expected one of {', '.join(_BD_METHODS)}")


def bd_rate(
    rate_anchor: Sequence[float],
    psnr_anchor: Sequence[float],
    rate_test: Sequence[float],
    psnr_test: Sequence[float],
    method: str = "pchip",
) -> float:
    """Bjøntegaard delta rate: average rate difference of ``test`` vs ``anchor`` at equal PSNR.

    ``log10(rate)`` is interpolated as a function of PSNR for each curve, integrated over the
    PSNR interval both curves cover, and the mean gap ``d`` is reported as ``(10**d - 1) * 100``.
    ``method="cubic"``: least-squares cubic polynomial (Bjøntegaard, VCEG-M33), >= 4 points.
    ``method="pchip"``: piecewise cubic Hermite interpolation (``scipy.interpolate.PchipInterpolator``),
    integrated exactly, as in the JCT-VC/JVET CTC sheets and CompressAI; >= 2 points, distinct PSNRs.
    Any rate unit works (bpp, kbps) as long as both curves use the same.

    Args:
        rate_anchor: anchor rates (positive), any order.
        psnr_anchor: anchor PSNRs (or another quality, higher is better), same length.
        rate_test: test rates.
        psnr_test: test PSNRs.
        method: ``"pchip"`` (default) or ``"cubic"``.

    Returns:
        The delta rate in percent; negative means the test codec needs fewer bits for the same quality.

    Raises:
        ValueError: unknown method, too few points, non-positive rates, repeated PSNRs (pchip),
            or PSNR ranges that do not overlap.

    Example:
        >>> round(bd_rate([1, 2, 4, 8], [30, 33, 36, 39], [0.5, 1, 2, 4], [30, 33, 36, 39], method="cubic"), 9)
        -50.0
    """
    _check_method(method)
    lr_a, q_a = _curve(rate_anchor, psnr_anchor, "anchor", method)
    lr_b, q_b = _curve(rate_test, psnr_test, "test", method)
    gap = _mean_gap(q_a, lr_a, q_b, lr_b, method, "PSNR")
    return float((10.0**gap - 1.0) * 100.0)


def bd_psnr(
    rate_anchor: Sequence[float],
    psnr_anchor: Sequence[float],
    rate_test: Sequence[float],
    psnr_test: Sequence[float],
    method: str = "pchip",
) -> float:
    """Bjøntegaard delta PSNR: average PSNR gain of ``test`` over ``anchor`` at equal rate, in dB.

    PSNR is interpolated as a function of ``log10(rate)`` and integrated over the overlapping
    log-rate interval; the methods are those of :func:`bd_rate` (``"pchip"`` needs distinct rates).

    Args:
        rate_anchor: anchor rates (positive), any order.
        psnr_anchor: anchor PSNRs, same length.
        rate_test: test rates.
        psnr_test: test PSNRs.
        method: ``"pchip"`` (default) or ``"cubic"``.

    Returns:
        The mean PSNR difference ``test - anchor`` in dB (positive = test better).

    Raises:
        ValueError: unknown method, too few points, non-positive rates, repeated rates (pchip),
            or rate ranges that do not overlap.

    Example:
        >>> round(bd_psnr([1, 2, 4, 8], [30, 33, 36, 39], [1, 2, 4, 8], [30.5, 33.5, 36.5, 39.5]), 9)
        0.5
    """
    _check_method(method)
    lr_a, q_a = _curve(rate_anchor, psnr_anchor, "anchor", method)
    lr_b, q_b = _curve(rate_test, psnr_test, "test", method)
    return _mean_gap(lr_a, q_a, lr_b, q_b, method, "rate")
