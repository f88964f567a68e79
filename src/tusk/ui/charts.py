"""Small line charts drawn as inline SVG on the server: one per metric, versions (or samples) oldest to newest.

One chart per metric (small multiples) rather than one chart with several axes: metrics rarely share a scale.
"""

from __future__ import annotations

from markupsafe import Markup, escape

__all__ = ["line_chart"]

W, H, PAD_L, PAD_B, PAD_T, PAD_R = 300, 140, 48, 24, 14, 34


def _fmt(v: float) -> str:
    return f"{v:.4g}"


def line_chart(metric: str, labels: list[str], values: list[float | None], over: str = "version",
               scale: tuple[float, float] | None = None) -> Markup:
    """``values[i]`` is the metric of version ``labels[i]`` (None: that version has no such metric); ``over``
    names what the labels are in the chart's accessible name ("version", "time"); ``scale`` fixes the y axis
    (e.g. 0 to 1 for p-values) instead of fitting it to the values."""
    points = [(i, v) for i, v in enumerate(values) if v is not None]
    lo = min((v for _, v in points), default=0.0)
    hi = max((v for _, v in points), default=1.0)
    if scale is not None:
        lo, hi = min(scale[0], lo), max(scale[1], hi)
    if hi == lo:
        lo, hi = lo - 1, hi + 1
    span = max(len(values) - 1, 1)

    def x(i: int) -> float:
        return PAD_L + (W - PAD_L - PAD_R) * (i / span if len(values) > 1 else 0.5)

    def y(v: float) -> float:
        return PAD_T + (H - PAD_T - PAD_B) * (1 - (v - lo) / (hi - lo))

    summary = ", ".join(f"{label}: {_fmt(v) if v is not None else 'none'}" for label, v in zip(labels, values,
                                                                                             strict=True))
    parts = [f'<svg class="chart" role="img" aria-label="{escape(metric)} by {escape(over)}: {escape(summary)}" '
             f'width="{W}" height="{H}" viewBox="0 0 {W} {H}">',
             f'<text x="{PAD_L}" y="10" class="chart-title">{escape(metric)}</text>',
             f'<line class="axis" x1="{PAD_L}" y1="{H - PAD_B}" x2="{W - PAD_R}" y2="{H - PAD_B}"/>',
             f'<line class="axis" x1="{PAD_L}" y1="{PAD_T}" x2="{PAD_L}" y2="{H - PAD_B}"/>',
             f'<text x="{PAD_L - 4}" y="{PAD_T + 4}" class="tick" text-anchor="end">{_fmt(hi)}</text>',
             f'<text x="{PAD_L - 4}" y="{H - PAD_B}" class="tick" text-anchor="end">{_fmt(lo)}</text>']
    if len(points) > 1:
        path = " ".join(f"{'M' if n == 0 else 'L'} {x(i):.1f} {y(v):.1f}" for n, (i, v) in enumerate(points))
        parts.append(f'<path class="series" d="{path}"/>')
    for i, v in points:
        parts.append(f'<circle class="point" cx="{x(i):.1f}" cy="{y(v):.1f}" r="3.5">'
                     f'<title>{escape(labels[i])}: {_fmt(v)}</title></circle>')
    for i, label in enumerate(labels):
        if len(labels) <= 8 or i in (0, len(labels) - 1):
            parts.append(f'<text x="{x(i):.1f}" y="{H - 6}" class="tick" text-anchor="middle">'
                         f'{escape(label)}</text>')
    parts.append("</svg>")
    return Markup("".join(parts))
