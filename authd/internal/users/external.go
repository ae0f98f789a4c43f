package users

// CheckGroup reports what is wrong with a group name, as the users file's
// validation sees it, or nil.
func CheckGroup(g string) error { return checkGroup(g) }

// CheckText reports what is wrong with an email or display name, as the
// users file's validation sees it, or nil.
func CheckText(s string) error { return checkText(s) }
