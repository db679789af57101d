"""Hydra finds this SearchPathPlugin (any module under the `hydra_plugins` namespace package)
and adds the example's config tree after exegpt-harness's own: its policy, model and
experiment YAMLs become `policy=refill-threshold`, `model=opt-6.7b`, `experiment=example`."""

from hydra.core.config_search_path import ConfigSearchPath
from hydra.plugins.search_path_plugin import SearchPathPlugin


class HarnessExampleSearchPath(SearchPathPlugin):
    def manipulate_search_path(self, search_path: ConfigSearchPath) -> None:
        search_path.append(provider="harness-example-policy", path="pkg://harness_example.conf")
