"""A simulated light-chain tube for the diagonal gate's tests: T cells (CD3+, stained by
neither light chain) and B cells whose kappa and lambda clouds lie ``apart`` either side
of the T cells' diagonal."""

from __future__ import annotations

import numpy as np

from immunomon.fcs.sample import Channel, Sample

TEMPLATE = """panel: light chains
version: "1"
markers: {CD3: [CD3], IgK: [IgK], IgL: [IgL]}
compensation: none
transforms: {fluorescence: linear}
populations:
  - {name: T cells, parent: root, dims: [CD3], method: threshold, args: {side: above}}
  - {name: B cells, parent: root, gate: {not: T cells}}
  - name: B kappa
    parent: B cells
    dims: [IgK, IgL]
    method: diagonal
    args: {negative: T cells, side: above}
"""


def light_chain_sample(rng, apart: float, *, n_t: int = 4_000, n_b: int = 6_000,
                       kappa_share: float = 0.6) -> Sample:
    kappa = rng.random(n_b) < kappa_share
    light = np.where(kappa, apart, -apart) + rng.normal(0, 40, n_b)
    columns = (np.concatenate([rng.normal(800, 60, n_t), rng.normal(100, 30, n_b)]),
               np.concatenate([rng.normal(100, 20, n_t), 300 + light / 2]),
               np.concatenate([rng.normal(100, 20, n_t), 300 - light / 2]))
    return Sample(events=np.column_stack(columns).astype(np.float32),
                  channel_info=tuple(Channel(name=n, marker=m, range=1024.0) for n, m in
                                     (("FL1", "CD3"), ("FL2", "IgK"), ("FL3", "IgL"))),
                  keywords={})
