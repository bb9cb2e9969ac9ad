"""An enrollment target: what an enrollment request names (DESIGN.md, URLs) — an
application's attached profile in the active project, or a legacy profile by id — with
everything the enrollment needs: project, application, profile, CA, policy and each
method's typed settings. Resolved by gateway.targets.TargetResolver, the one resolver."""

from __future__ import annotations

from dataclasses import dataclass

from gateway.core.methods import MethodSettings
from gateway.core.model import (
    Application,
    CertificateAuthority,
    EnrollmentMethod,
    Policy,
    Profile,
    ProfileAttachment,
    Project,
)


@dataclass(frozen=True)
class EnrollmentTarget:
    project: Project
    application: Application | None  # None: a legacy profile-scoped target
    profile: Profile
    attachment: ProfileAttachment | None  # None exactly when application is None
    # None: a self-signed profile (profile.self_signed), or the profile's CA no longer exists.
    ca: CertificateAuthority | None
    policy: Policy | None
    methods: MethodSettings

    @property
    def legacy(self) -> bool:
        return self.application is None

    @property
    def label(self) -> str:
        """For messages and logs: "app/profile", or the legacy profile's id."""
        if self.application is None:
            return str(self.profile.id)
        return f"{self.application.slug}/{self.profile.slug}"

    @property
    def owner(self) -> str:
        """Who a target's secrets and protocol state belong to ("attachment:<id>" or
        "profile:<id>"); a protocol appends its own suffix."""
        if self.attachment is None:
            return f"profile:{self.profile.id}"
        return f"attachment:{self.attachment.id}"

    def enabled(self, method: EnrollmentMethod) -> bool:
        settings = getattr(self.methods, method.value)
        return bool(settings.enabled)


@dataclass(frozen=True)
class AttachedTarget(EnrollmentTarget):
    """An application's attached profile (never legacy)."""

    application: Application
    attachment: ProfileAttachment
