package silver

// BeforeRowsCommit makes a test function run between an increment's
// sightings commit and its rows commit.
func BeforeRowsCommit(s *Stage, f func()) { s.beforeRows = f }
