"""subspace-hub's ``log_rmse`` metric as an ``evaluate`` module: ``evaluate.load(<this folder>)``."""

import subspace_hub.metrics.hf_evaluate as _hub


class LogRmse(_hub.SubspaceHubMetric):
    metric_name = "log_rmse"
