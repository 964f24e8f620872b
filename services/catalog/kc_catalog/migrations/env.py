from kc_common.migrations import run_env
from kc_catalog.models import metadata

run_env(metadata)
