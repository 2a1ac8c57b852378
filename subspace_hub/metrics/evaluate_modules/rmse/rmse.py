"""subspace-hub's ``rmse`` metric as an ``evaluate`` module: ``evaluate.load(<this folder>)``."""

import subspace_hub.metrics.hf_evaluate as _hub


class Rmse(_hub.SubspaceHubMetric):
    metric_name = "rmse"
