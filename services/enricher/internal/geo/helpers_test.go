package geo_test

import (
	"os"
	"path/filepath"
)

// writeFile replaces path by rename.
func writeFile(path string, b []byte) error {
	tmp := filepath.Join(filepath.Dir(path), ".tmp-"+filepath.Base(path))
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
