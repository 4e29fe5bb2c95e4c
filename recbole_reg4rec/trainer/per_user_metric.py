"""RecBole's evaluator, also keeping each user's value of the validation metric.

Choosing inference settings on validation compares settings of one trained model on the same users,
so the noise of a comparison is that of the *paired* per-user differences, far smaller than the
standard error of either mean (:mod:`.inference_selection` uses it to keep a secondary knob at its
neutral value unless the gain is larger than that noise). RecBole's evaluator only returns means;
this subclass keeps, from its last call, the per-user values of one top-k metric (e.g. ``ndcg@10``),
computed by RecBole's own metric class, so they average exactly to the reported value (before
RecBole's rounding).
"""

from __future__ import annotations

from typing import Optional

import numpy as np
from recbole.evaluator import Evaluator
from recbole.evaluator.base_metric import TopkMetric
from recbole.evaluator.register import metrics_dict


class PerUserEvaluator(Evaluator):
    """:class:`recbole.evaluator.Evaluator` that records ``last_per_user``: ``[users]`` values of
    ``metric`` (``name@k`` of a top-k metric) at its last :meth:`evaluate`; ``None`` for other metrics."""

    def __init__(self, config, metric: str):
        super().__init__(config)
        name, _, k = str(metric).lower().partition("@")
        metric_class = metrics_dict.get(name)
        self._k = int(k) if k.isdigit() else None
        self._metric = (
            metric_class(config)
            if self._k is not None and metric_class is not None and issubclass(metric_class, TopkMetric)
            else None
        )
        self.last_per_user: Optional[np.ndarray] = None

    def evaluate(self, dataobject):
        if self._metric is not None:
            pos_index, pos_len = self._metric.used_info(dataobject)
            self.last_per_user = self._metric.metric_info(pos_index, pos_len)[:, self._k - 1]
        return super().evaluate(dataobject)
