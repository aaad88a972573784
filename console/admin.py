"""The staff console's pages of people (console.people), of buckets (console.buckets) and of the
security log (console.security), found by the admin's autodiscovery of this module."""

from console import buckets, people, security  # noqa: F401  (they register on the console)
