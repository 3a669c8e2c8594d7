package main

import "errors"

// runDataInspect is replaced by the data issue's implementation.
func runDataInspect(c *cli, args []string) error {
	return errors.New("not built yet (the data issue brings it)")
}
