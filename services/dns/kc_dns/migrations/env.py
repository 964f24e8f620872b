from kc_common.migrations import run_env
from kc_dns.models import metadata

run_env(metadata)
