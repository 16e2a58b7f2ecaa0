"""Client for the Ghasi SMS Gateway."""

from ghasi_sms_client._async import AsyncSmsClient
from ghasi_sms_client._errors import FieldViolation, LimitExceeded, SmsError
from ghasi_sms_client._proto import sms_pb2 as pb
from ghasi_sms_client._proto import sms_pb2_grpc as pb_grpc
from ghasi_sms_client._retry import RetryPolicy
from ghasi_sms_client._sync import SmsClient

__all__ = ["AsyncSmsClient", "FieldViolation", "LimitExceeded", "RetryPolicy", "SmsClient",
           "SmsError", "pb", "pb_grpc"]
