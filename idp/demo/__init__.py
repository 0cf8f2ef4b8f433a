"""The demo: everything `idp demo` runs besides the provider itself.

``create_portal`` builds a relying-party portal for one tenant, a real OpenID
Connect client of that tenant's issuer, so the whole sign-in can be watched
from the portal's side.
"""

from idp.demo.portal import create_portal

__all__ = ["create_portal"]
