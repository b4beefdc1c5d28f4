"""placeholder"""

from calsync.sync.services import ServiceError


class BusyTimeNotFresh(ServiceError):
    pass
