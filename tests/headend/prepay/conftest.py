"""The prepayment API world (accounts a1, a2 on points of areas A1, A2) for the VEE API tests."""

from tests.headend.ops_support import cheap_hashes_fixture  # noqa: F401
from tests.headend.test_prepay_api import api  # noqa: F401
