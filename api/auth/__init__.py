"""Registration, login (phone+password, WeChat, QQ), tokens and roles."""
