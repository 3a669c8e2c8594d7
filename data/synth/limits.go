package synth

// Size returns the image width and height that o gives (the level's default
// when Width and Height are 0).
func (o Options) Size() (width, height int) { return o.size() }

// Check returns the error WriteDataset would give for o (image size, level),
// so that a command can refuse bad options before other checks and work.
func (o Options) Check() error { return o.check() }
