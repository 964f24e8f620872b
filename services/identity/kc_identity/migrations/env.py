from kc_common.migrations import run_env
from kc_identity.models import metadata

run_env(metadata)
