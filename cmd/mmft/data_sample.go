package main

import "errors"

// runDataSample is replaced by the data issue's implementation.
func runDataSample(c *cli, args []string) error {
	return errors.New("not built yet (the data issue brings it)")
}
