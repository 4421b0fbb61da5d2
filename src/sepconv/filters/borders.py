"""Border modes of the filters, each the same as OpenCV's and scipy.ndimage's (``abcd`` is the image row)::

    sepconv      OpenCV                              scipy.ndimage     numpy.pad    torch F.pad   padded row
    reflect      BORDER_REFLECT                      'reflect'         'symmetric'  (none)        dcba|abcd|dcba
    reflect101   BORDER_REFLECT_101 = BORDER_DEFAULT 'mirror'          'reflect'    'reflect'     dcb|abcd|cba
    replicate    BORDER_REPLICATE                    'nearest'         'edge'       'replicate'   aaaa|abcd|dddd
    constant     BORDER_CONSTANT (value=cval)        'constant' (cval) 'constant'   'constant'    0000|abcd|0000
    wrap         BORDER_WRAP                         'wrap'            'wrap'       'circular'    abcd|abcd|abcd

Note the trap: ``'reflect'`` means *edge repeated* in OpenCV (BORDER_REFLECT) and scipy, but *edge not
repeated* in numpy and torch. OpenCV's default border (BORDER_DEFAULT) is ``reflect101``; scipy's default is
``reflect``. ``cv2.filter2D`` rejects BORDER_WRAP; pad with ``cv2.copyMakeBorder`` first. Borders wider than
the image repeat the rule periodically, as scipy and OpenCV do.
"""

from __future__ import annotations

import torch


def border_index(n: int, before: int, after: int, border: str) -> torch.Tensor:
    """Source index of each position ``-before .. n + after - 1`` of a padded axis of length ``n``.

    ``constant`` maps outside positions to ``-1``.

    Example:
        >>> border_index(4, 3, 3, "reflect").tolist()
        [2, 1, 0, 0, 1, 2, 3, 3, 2, 1]
        >>> border_index(4, 3, 3, "reflect101").tolist()
        [3, 2, 1, 0, 1, 2, 3, 2, 1, 0]
        >>> border_index(4, 2, 2, "wrap").tolist(), border_index(4, 2, 2, "replicate").tolist()
        ([2, 3, 0, 1, 2, 3, 0, 1], [0, 0, 0, 1, 2, 3, 3, 3])
    """
    i = torch.arange(-before, n + after)
    if border == "replicate":
        return i.clamp(0, n - 1)
    if border == "wrap":
        return i.remainder(n)
    if border == "constant":
        return torch.where((i >= 0) & (i < n), i, -1)
    if border == "reflect":
        m = i.remainder(2 * n)
        return torch.where(m < n, m, 2 * n - 1 - m)
    if n == 1:  # reflect101 of a single element
        return torch.zeros_like(i)
    m = i.remainder(2 * n - 2)
    return torch.where(m < n, m, 2 * n - 2 - m)


def pad2d(x: torch.Tensor, pads: tuple[int, int, int, int], border: str, cval: float = 0.0) -> torch.Tensor:
    """Pad the last two dims of ``x`` ``(..., H, W)`` by ``(top, bottom, left, right)`` with ``border``.

    Example:
        >>> pad2d(torch.tensor([[1.0, 2.0]]), (1, 0, 2, 1), "reflect")
        tensor([[2., 1., 1., 2., 2.],
                [2., 1., 1., 2., 2.]])
    """
    top, bottom, left, right = pads
    h, w = x.shape[-2:]
    out = x.new_empty((*x.shape[:-2], h + top + bottom, w + left + right))
    out[..., top : top + h, left : left + w] = x
    if border == "constant":
        out[..., :top, :] = cval
        out[..., top + h :, :] = cval
        out[..., :, :left] = cval
        out[..., :, left + w :] = cval
        return out
    rows = border_index(h, top, bottom, border).to(x.device)
    cols = border_index(w, left, right, border).to(x.device)
    if top:
        out[..., :top, left : left + w] = x.index_select(-2, rows[:top])
    if bottom:
        out[..., top + h :, left : left + w] = x.index_select(-2, rows[top + h :])
    if left:
        out[..., :, :left] = out.index_select(-1, cols[:left] + left)
    if right:
        out[..., :, left + w :] = out.index_select(-1, cols[left + w :] + left)
    return out
