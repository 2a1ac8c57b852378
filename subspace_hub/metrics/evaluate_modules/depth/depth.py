"""subspace-hub's ``depth`` metric as an ``evaluate`` module: ``evaluate.load(<this folder>)``."""

import subspace_hub.metrics.hf_evaluate as _hub


class Depth(_hub.SubspaceHubMetric):
    metric_name = "depth"
