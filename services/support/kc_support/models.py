"""support's tables. Only support reads or writes them."""
from sqlalchemy import MetaData

from kc_common.db import add_messaging_tables

metadata = MetaData()

add_messaging_tables(metadata)
