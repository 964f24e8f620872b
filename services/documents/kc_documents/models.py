"""documents's tables. Only documents reads or writes them."""
from sqlalchemy import MetaData

from kc_common.db import add_messaging_tables

metadata = MetaData()

add_messaging_tables(metadata)
