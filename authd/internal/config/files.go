package config

import (
	"errors"
	"io/fs"
	"os"
)

// CheckFiles checks at start what Validate cannot see on disk, returning
// *Errors or nil: the users file, which holds password hashes, must not be
// open to other users, nor may smtp.password_file (which must exist), and
// data_dir must be a directory not writable by others. Other paths that do
// not exist yet are not an error here.
func CheckFiles(c Config) error {
	var e Errors
	if fi, err := os.Stat(c.UsersFile); err == nil {
		perm := fi.Mode().Perm()
		switch {
		case fi.IsDir():
			e.add("users_file", "%s is a directory", c.UsersFile)
		case perm&0o007 != 0:
			e.add("users_file", "%s is %s by others (mode %04o); run chmod 600 %s", c.UsersFile, access(perm), perm, c.UsersFile)
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		e.add("users_file", "cannot check %s: %v", c.UsersFile, err)
	}
	if p := c.SMTP.PasswordFile; p != "" {
		if fi, err := os.Stat(p); err != nil {
			e.add("smtp.password_file", "cannot read %s: %v", p, err)
		} else if perm := fi.Mode().Perm(); perm&0o007 != 0 {
			e.add("smtp.password_file", "%s is %s by others (mode %04o); run chmod 600 %s", p, access(perm), perm, p)
		}
	}
	if fi, err := os.Stat(c.DataDir); err == nil {
		perm := fi.Mode().Perm()
		switch {
		case !fi.IsDir():
			e.add("data_dir", "%s is not a directory (mode %s)", c.DataDir, fi.Mode())
		case perm&0o002 != 0:
			e.add("data_dir", "%s is writable by others (mode %04o); run chmod 700 %s", c.DataDir, perm, c.DataDir)
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		e.add("data_dir", "cannot check %s: %v", c.DataDir, err)
	}
	if len(e) == 0 {
		return nil
	}
	return &e
}

// access names the permissions "other" has among read, write and execute.
func access(perm fs.FileMode) string {
	switch {
	case perm&0o004 != 0 && perm&0o002 != 0:
		return "readable and writable"
	case perm&0o004 != 0:
		return "readable"
	case perm&0o002 != 0:
		return "writable"
	}
	return "executable"
}
