package server

import "github.com/julienschmidt/httprouter"

func (s *Server) passkeyRoutes(r *httprouter.Router, p string) {}
