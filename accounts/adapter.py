"""How django-allauth treats our people: the usernames it makes up, and where staff land."""

from allauth.account.adapter import DefaultAccountAdapter


class AccountAdapter(DefaultAccountAdapter):
    pass
