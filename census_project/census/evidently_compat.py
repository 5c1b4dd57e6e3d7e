"""Import this before ``evidently``: evidently 0.7.23 (the newest) still imports
``pandas.core.dtypes.common.infer_dtype_from_object``, a private helper that pandas 3 removed,
so ``import evidently`` fails with pandas 3.1. We put back the one-line helper it needs (it only
serves evidently's legacy column-type test, which monitor.py does not use). Remove this module
when evidently supports pandas 3."""

import pandas
import pandas.core.dtypes.common as _pandas_common

if not hasattr(_pandas_common, "infer_dtype_from_object"):
    _pandas_common.infer_dtype_from_object = lambda dtype: pandas.api.types.pandas_dtype(dtype).type
