from kc_common.migrations import run_env
from kc_billing.models import metadata

run_env(metadata)
