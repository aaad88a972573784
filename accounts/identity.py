"""How the platform names a person: by their email. People sign up with an email and never
choose a username (allauth makes one up), so no page or email may show that one
(ACCOUNT_USER_DISPLAY)."""


def user_display(user) -> str:
    return user.email or user.get_username()
