"""Repositories: async, one session each (shared through a Tx), domain objects in and out."""

from store.repos.access import PrincipalRepository, SecretRepository, TokenRepository
from store.repos.audit import AuditRepository
from store.repos.certificates import CertificateRepository
from store.repos.config import (
    ApplicationRepository,
    AttachmentRepository,
    PolicyRepository,
    ProfileRepository,
)
from store.repos.org import OrganizationRepository, ProjectRepository
from store.repos.pki import CARepository, CrlRepository

__all__ = [
    "ApplicationRepository",
    "AttachmentRepository",
    "AuditRepository",
    "CARepository",
    "CertificateRepository",
    "CrlRepository",
    "OrganizationRepository",
    "PolicyRepository",
    "PrincipalRepository",
    "ProfileRepository",
    "ProjectRepository",
    "SecretRepository",
    "TokenRepository",
]
