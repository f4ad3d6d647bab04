package raft

// ServerSuffrage says whether a server votes.
type ServerSuffrage int

const (
	// Voter servers vote in elections and count towards commitment.
	Voter ServerSuffrage = iota
	// Nonvoter servers receive the log but neither vote nor count towards
	// commitment.
	Nonvoter
	// Staging behaves as Nonvoter; it survives for old configurations only.
	Staging
)

// String returns "Voter", "Nonvoter", "Staging", or "ServerSuffrage".
func (s ServerSuffrage) String() string {
	switch s {
	case Voter:
		return "Voter"
	case Nonvoter:
		return "Nonvoter"
	case Staging:
		return "Staging"
	}
	return "ServerSuffrage"
}

// ServerID names a server, uniquely and for all time.
type ServerID string

// ServerAddress is where a transport reaches a server.
type ServerAddress string

// Server is one member of a Configuration.
type Server struct {
	Suffrage ServerSuffrage
	ID       ServerID
	Address  ServerAddress
}

// Configuration is the cluster's membership: who is in it and who votes. It
// travels in LogConfiguration entries and in snapshots.
type Configuration struct {
	Servers []Server
}

// Clone returns a copy that shares no memory with c.
func (c *Configuration) Clone() (copy Configuration) {
	if c.Servers != nil {
		copy.Servers = append([]Server(nil), c.Servers...)
	}
	return
}

// ConfigurationChangeCommand names one kind of membership change.
type ConfigurationChangeCommand uint8

const (
	// AddVoter makes a server a Voter, adding it if absent.
	AddVoter ConfigurationChangeCommand = iota
	// AddNonvoter adds a Nonvoter; an existing Voter only gets its address
	// updated.
	AddNonvoter
	// DemoteVoter turns a present server into a Nonvoter.
	DemoteVoter
	// RemoveServer takes a server out of the configuration.
	RemoveServer
	// Promote is hashicorp/raft's command to turn a Staging server into a
	// Voter. No method issues it (AddVoter adds Voters directly), and a
	// change naming it is refused as unknown.
	Promote
	// AddStaging is an old name of AddVoter.
	AddStaging = 0
)

// String returns the command's name.
func (c ConfigurationChangeCommand) String() string {
	switch c {
	case AddVoter:
		return "AddVoter"
	case AddNonvoter:
		return "AddNonvoter"
	case DemoteVoter:
		return "DemoteVoter"
	case RemoveServer:
		return "RemoveServer"
	case Promote:
		return "Promote"
	}
	return "ConfigurationChangeCommand"
}
