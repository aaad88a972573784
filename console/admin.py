"""The staff console's pages of people (console.people) and of buckets (console.buckets), found
by the admin's autodiscovery of this module."""

from console import buckets, people  # noqa: F401  (they register on the staff console)
