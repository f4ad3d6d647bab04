package raft

import (
	"fmt"
)

// configurationChangeRequest is one single-server membership change, as the
// leader's loop receives it from AddVoter, AddNonvoter, DemoteVoter and
// RemoveServer.
type configurationChangeRequest struct {
	// command says which change to make.
	command ConfigurationChangeCommand
	// serverID names the server the change is about.
	serverID ServerID
	// serverAddress is where that server is reached; only AddVoter and
	// AddNonvoter read it.
	serverAddress ServerAddress
	// prevIndex, when non-zero, is the index of the configuration the caller
	// based its request on: the change is refused if the latest configuration
	// is at another index, so that two operators cannot overwrite each other.
	prevIndex uint64
}

// checkConfiguration reports the first reason the configuration cannot run a
// cluster: a server without an ID or an address, two servers sharing an ID or
// an address, or no Voter at all. Each server is checked in order, for an
// empty ID, an empty address, a repeated ID, then a repeated address; the
// voter count comes last.
func checkConfiguration(configuration Configuration) error {
	seenIDs := make(map[ServerID]struct{}, len(configuration.Servers))
	seenAddresses := make(map[ServerAddress]struct{}, len(configuration.Servers))
	for _, server := range configuration.Servers {
		if server.ID == "" {
			return fmt.Errorf("empty ID in configuration: %v", server)
		}
		if server.Address == "" {
			return fmt.Errorf("empty address in configuration: %v", server)
		}
		if _, dup := seenIDs[server.ID]; dup {
			return fmt.Errorf("found duplicate ID in configuration: %v", server.ID)
		}
		seenIDs[server.ID] = struct{}{}
		if _, dup := seenAddresses[server.Address]; dup {
			return fmt.Errorf("found duplicate address in configuration: %v", server.Address)
		}
		seenAddresses[server.Address] = struct{}{}
	}
	if votersOf(configuration).size() == 0 {
		return fmt.Errorf("need at least one voter in configuration: %v", configuration)
	}
	return nil
}

// nextConfiguration returns the configuration that results from applying
// change to current, the latest configuration, stored at currentIndex. It
// never modifies current. The result passes checkConfiguration, or an error
// says why the change is refused.
//
// Changes add or remove at most one voter, which is what keeps any majority
// of the old configuration overlapping any majority of the new one without
// joint consensus (Raft dissertation §4.1).
func nextConfiguration(current Configuration, currentIndex uint64, change configurationChangeRequest) (Configuration, error) {
	if change.prevIndex > 0 && change.prevIndex != currentIndex {
		return Configuration{}, fmt.Errorf("configuration changed since %v (latest is %v)", change.prevIndex, currentIndex)
	}

	configuration := current.Clone()
	position := -1
	for i, server := range configuration.Servers {
		if server.ID == change.serverID {
			position = i
			break
		}
	}

	switch change.command {
	case AddVoter:
		voter := Server{Suffrage: Voter, ID: change.serverID, Address: change.serverAddress}
		if position < 0 {
			configuration.Servers = append(configuration.Servers, voter)
		} else {
			// A Voter keeps its suffrage and takes the new address; a
			// Nonvoter or Staging server becomes a Voter outright.
			configuration.Servers[position] = voter
		}
	case AddNonvoter:
		if position < 0 {
			configuration.Servers = append(configuration.Servers,
				Server{Suffrage: Nonvoter, ID: change.serverID, Address: change.serverAddress})
		} else {
			// Adding a nonvoter never takes a vote away: a Voter or
			// Staging server keeps its suffrage and only moves address.
			configuration.Servers[position].Address = change.serverAddress
		}
	case DemoteVoter:
		if position >= 0 {
			configuration.Servers[position].Suffrage = Nonvoter
		}
	case RemoveServer:
		if position >= 0 {
			configuration.Servers = append(configuration.Servers[:position], configuration.Servers[position+1:]...)
		}
	default:
		return Configuration{}, fmt.Errorf("raft: unknown configuration change command %d", uint8(change.command))
	}

	if err := checkConfiguration(configuration); err != nil {
		return Configuration{}, err
	}
	return configuration, nil
}

// inConfiguration reports whether the configuration lists a server with this
// ID, whatever its suffrage.
func inConfiguration(configuration Configuration, id ServerID) bool {
	for _, server := range configuration.Servers {
		if server.ID == id {
			return true
		}
	}
	return false
}
